"""The project's FHIR profiles: terminology, the reading -> Observation builder, the validator.

Pure: imports the adapters' value objects and fhir.resources, never the service, a database or
the web framework.
"""

from .builder import BuildContext, Built, build
from .validation import Issue, check_rules, check_structure, has_errors, operation_outcome, validate

__all__ = ["BuildContext", "Built", "Issue", "build", "check_rules", "check_structure", "has_errors", "operation_outcome", "validate"]
