"""The project's FHIR profiles: terminology, the reading -> Observation builder, the validator.

Pure: imports the adapters' value objects and fhir.resources, never the service, a database or
the web framework.
"""

from .builder import BuildContext, Built, build
from .issues import Issue, has_errors, operation_outcome
from .validation import check_built, check_rules, check_structure, validate

__all__ = [
    "BuildContext",
    "Built",
    "Issue",
    "build",
    "check_built",
    "check_rules",
    "check_structure",
    "has_errors",
    "operation_outcome",
    "validate",
]
