"""Shareable links: a setup as a compact URL-safe text (the address bar's `?setup=…`), and back, validated.

A link is untrusted input: decoding is bounded (a decompressed setup is a few hundred bytes) and every failure is a
ConfigError saying the link is damaged, never a traceback.
"""
from __future__ import annotations

import base64
import binascii
import json
import zlib

from explorer.config.schema import ConfigError, ExperimentConfig, validate_config
from explorer.config.sections import dataset_defaults
from explorer.config.versioned import read_object

_LINK_MAX_BYTES = 64_000  # a decompressed setup is a few hundred bytes: anything near this is not one of ours


def encode_setup(config: ExperimentConfig) -> str:
    """A compact URL-safe text for the setup: the fields that differ from the defaults, as JSON, zlib, base64url. A
    data set with its own training or fine-tuning defaults (spirals, mnist) has those fields written whatever their
    value: decoding fills them in where a link is silent, so a value equal to the general default left out would come
    back changed."""
    # The version is always written (exclude_defaults would drop it): a link made before config version 2 carried
    # none, and is read as version 1 (decode_setup), so that it keeps its meaning.
    short = {"version": config.version, **config.model_dump(exclude_defaults=True)}
    for section, own in dataset_defaults(config.data.name).items():
        values = getattr(config, section)
        short[section] = {**short.get(section, {}), **{k: getattr(values, k) for k in own}}
    raw = json.dumps(short, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode_setup(text: str) -> ExperimentConfig:
    """The setup of a shared link. A damaged or edited link raises ConfigError saying so (never a traceback)."""
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, _LINK_MAX_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:  # too large, or cut short
            raise ValueError("not a whole setup")
    except (binascii.Error, zlib.error, ValueError):
        raise ConfigError(["the link's setup is damaged or was edited (it does not decode); "
                           "the default setup is used"]) from None
    setup = read_object(raw)
    # Links made before config version 2 wrote no version (they left out every default): they are version 1 setups.
    return validate_config({"version": 1, **setup})
