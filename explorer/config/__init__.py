"""The setup as data: `ExperimentConfig` and its sections (frozen, validated pydantic models, `schema.py` and
`sections.py`), layer names and "one value or {layer: value}" (`layers.py`), the bounded reading of untrusted JSON
(`jsontext.py`), the one loader of versioned JSON files — configs, presets and lessons alike: bounded read, one
version check, field-named problems (`versioned.py`), how a message quotes an untrusted name (`names.py`), shareable
links (`links.py`) and presets with their published schema (`presets.py`, `preset_schema.json`). Torch-free, so
`python -m explorer schema` starts in a blink. The bottom floor: it imports nothing of the project's but itself, and
every other folder may import it."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ()
