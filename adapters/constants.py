"""File names, keys and method names of adapters on disk, in one place."""

from __future__ import annotations

import re

# What PEFT's `save_pretrained` writes, plus unitune's card.
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
CARD_FILE = "unitune-adapter.json"
# A full fine-tune is stored with the model's own files instead of PEFT's.
MODEL_CONFIG_FILE = "config.json"
MODEL_WEIGHTS_SUFFIX = ".safetensors"
# Pickled weights: never loaded (they can run code when unpickled).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")

# Training methods (the `--method` of `unitune train`) and the PEFT type each saves as.
LORA = "lora"
IA3 = "ia3"
PROMPT_TUNING = "prompt-tuning"
FULL = "full"
METHODS = (LORA, IA3, PROMPT_TUNING, FULL)
PEFT_TYPE_TO_METHOD = {"LORA": LORA, "IA3": IA3, "PROMPT_TUNING": PROMPT_TUNING}

# Where adapters live: `<project>/.unitune/adapters/` first, then `$UNITUNE_HOME/adapters/`.
PROJECT_STORE = ".unitune/adapters"
USER_STORE = "adapters"
ARCHIVE_SUFFIX = ".unitune-adapter.tar.gz"

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

# Keys of the card (`unitune-adapter.json`).
CARD_NAME = "name"
CARD_METHOD = "method"
CARD_BASE_MODEL = "base_model"  # {"id", "revision", "weights_hash"}
CARD_PROMPT_FORMAT = "prompt_format_version"
CARD_UNITUNE_VERSION = "unitune_version"
CARD_LIBRARY_VERSIONS = "library_versions"  # {"peft", "transformers", "torch"}
CARD_LANGUAGES = "languages"
CARD_TRAINING = "training"
CARD_METRICS = "metrics"
CARD_CREATED = "created"
# Sub-keys of the card's `base_model`.
BASE_ID = "id"
BASE_REVISION = "revision"
BASE_WEIGHTS_HASH = "weights_hash"
# Libraries whose versions the card records (they decide whether the files load again).
RECORDED_LIBRARIES = ("peft", "transformers", "torch")
# The base fingerprint reads this much of each end of every weights file, so it stays cheap for
# multi-gigabyte models while still telling apart two random models of the same configuration.
FINGERPRINT_CHUNK_BYTES = 1 << 20

# Store names as shown to users; an adapter given as a folder path belongs to no store.
STORE_PROJECT = "project"
STORE_USER = "user"
STORE_FOLDER = "folder"
STORES = (STORE_PROJECT, STORE_USER)
# Work folders inside a store (`.tmp-<name>-<random>`): never listed; removed once stale, since a
# live one may belong to a save still running in another process.
TEMP_PREFIX = ".tmp-"
STALE_TEMP_SECONDS = 3600
# Limits for imported archives (what they would unpack to, not their compressed size), checked on a
# first pass over the stream before anything is unpacked.
MAX_ARCHIVE_BYTES = 20 << 30
MAX_ARCHIVE_MEMBERS = 1_000  # an adapter is a handful of files; a full model a few dozen
MAX_ARCHIVE_HEADER_BYTES = 1 << 20  # a pax or long-name header: a name and a few attributes
MAX_ARCHIVE_TRAILER_BYTES = 1 << 20  # zeros after a tar's end: the rest of its last 10 KiB record, and more
# Weights hardly compress: an archive unpacking to more than this many times its size (past a floor)
# is a decompression bomb.
MAX_ARCHIVE_RATIO = 200
ARCHIVE_RATIO_FLOOR = 64 << 20
