"""Test set-up: a private reference-curve cache for the whole session, and no
result store unless a test asks for one (a stored answer would let a test of
the computation pass without computing)."""

import os
import tempfile

os.environ.setdefault("ESS_CACHE_DIR", tempfile.mkdtemp(prefix="ess-test-cache-"))
os.environ["ESS_STORE"] = "off"
