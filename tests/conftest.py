"""Test set-up: a private reference-curve cache for the whole session."""

import os
import tempfile

os.environ.setdefault("ESS_CACHE_DIR", tempfile.mkdtemp(prefix="ess-test-cache-"))
