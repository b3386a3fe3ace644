"""The codebook of the evaluation export: every table and column with its type, unit and code system,
generated from the column definitions in ``tables`` (JSON for tools, Markdown for people)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .tables import NOT_YET, TABLES

JSON = "codebook.json"
MARKDOWN = "codebook.md"


def document() -> dict[str, Any]:
    return {
        "tables": [
            {
                "name": t.name,
                "row": t.row,
                "note": t.note,
                "columns": [
                    {
                        "name": c.name,
                        "type": str(c.type),
                        "meaning": c.meaning,
                        "unit": c.unit,
                        "code_system": c.code_system,
                    }
                    for c in t.columns
                ],
            }
            for t in TABLES
        ],
        "not_yet_recorded": NOT_YET,
        "pseudonyms": "patient, device and reading ids are the evaluator's own pseudonyms (AES-SIV under a key "
        "derived for its organisation): stable across its exports, unlinkable to another recipient's",
    }


def markdown() -> str:
    lines = ["# Codebook of the homediag evaluation export", ""]
    doc = document()
    for t in doc["tables"]:
        lines += [f"## `{t['name']}`", "", f"One row: {t['row']}.", ""]
        if t["note"]:
            lines += [t["note"], ""]
        lines += ["| column | type | unit | code system | meaning |", "|---|---|---|---|---|"]
        for c in t["columns"]:
            lines.append(
                f"| `{c['name']}` | {c['type']} | {c['unit'] or ''} | {c['code_system'] or ''} | {c['meaning']} |"
            )
        lines.append("")
    if doc["not_yet_recorded"]:
        lines += ["## Not recorded yet", ""]
        lines += [f"- `{name}`: {why}" for name, why in doc["not_yet_recorded"].items()]
        lines.append("")
    lines += ["## Pseudonyms", "", doc["pseudonyms"], ""]
    return "\n".join(lines)


def write(directory: Path) -> None:
    for name, text in ((JSON, json.dumps(document(), indent=2, sort_keys=True) + "\n"), (MARKDOWN, markdown())):
        tmp = directory / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, directory / name)
