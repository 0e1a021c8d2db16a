"""Shared test configuration: hypothesis profiles.

Select a profile with the ``HYPOTHESIS_PROFILE`` environment variable (default ``dev``):

* ``dev`` -- 100 examples per property, no deadline (the machine may be shared and busy);
* ``ci`` -- 300 examples, derandomized (reproducible runs), no deadline.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
