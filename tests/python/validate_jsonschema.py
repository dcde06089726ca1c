#!/usr/bin/env python3
"""Validate NDJSON events against culla's JSON Schema files, independently of culla.

Usage: validate_jsonschema.py SCHEMA_DIR FILE.ndjson [FILE.ndjson ...]

Loads every SCHEMA_DIR/*.schema.json (draft 2020-12; each fixes `type` with `const`),
checks each schema is itself valid, then validates every non-blank line of every file
against the schema of its `type`. Prints `FILE:LINE: message` per invalid line and a
summary `checked N lines: V valid, E errors`; exits 1 if any line is invalid, 2 on
usage or setup errors (missing module, no schemas). Used by culla-simulate's tests
through $CULLA_PYTHON (a venv with the `jsonschema` package).
"""
import glob
import json
import os
import sys

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:
    sys.stderr.write(
        "validate_jsonschema.py: the Python module 'jsonschema' is missing; "
        "install it (pip install jsonschema) or point CULLA_PYTHON at a venv that has it\n"
    )
    sys.exit(2)


def load_schemas(schema_dir):
    validators = {}
    for path in sorted(glob.glob(os.path.join(schema_dir, "*.schema.json"))):
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        event_type = schema["properties"]["type"]["const"]
        validators[event_type] = Draft202012Validator(schema)
    return validators


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    validators = load_schemas(argv[1])
    if not validators:
        sys.stderr.write(f"validate_jsonschema.py: no *.schema.json in {argv[1]}\n")
        return 2
    checked = errors = 0
    for path in argv[2:]:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                checked += 1
                problem = None
                try:
                    event = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    problem = f"not JSON: {e}"
                else:
                    if not isinstance(event, dict):
                        problem = "not a JSON object"
                    elif event.get("type") not in validators:
                        problem = f"unknown type {event.get('type')!r}"
                    else:
                        err = jsonschema.exceptions.best_match(
                            validators[event["type"]].iter_errors(event)
                        )
                        if err is not None:
                            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
                            problem = f"{where}: {err.message}"
                if problem is not None:
                    errors += 1
                    if errors <= 50:
                        print(f"{path}:{n}: {problem}")
    print(f"checked {checked} lines: {checked - errors} valid, {errors} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
