"""Puts the generated module (TILLGATE_PY_DIR: tillgate_ffi.py next to libtillgate_ffi.so) on the path."""
import os
import sys

sys.path.insert(0, os.environ.get("TILLGATE_PY_DIR", os.path.join(os.path.dirname(__file__), "generated")))
