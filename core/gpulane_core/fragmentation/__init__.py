"""Cluster placement on milli-GPU states: FGD fragmentation math and the placement policies.

Pure (no I/O). Value types in :mod:`.types`, fragmentation in :mod:`.frag`, the policy surface in
:mod:`.policy`, the published baselines in :mod:`.baselines` and :mod:`.fgd`, gpulane's own policy
in :mod:`.lanes_policy`, names in :mod:`.registry`.
"""
