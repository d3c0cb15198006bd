"""Pod annotation keys the operator writes and the agent reads (docs/contracts.md).

The agent keeps its own copy of the names because components share only gpulane_core; the contract
page is the single source and a unit test pins these strings to it.
"""

from __future__ import annotations

NODE = "gpulane.dev/node"
GPU_INDEX = "gpulane.dev/gpu-index"
GPU_UUID = "gpulane.dev/gpu-uuid"
LANE = "gpulane.dev/lane"
LANE_SIZE_MIB = "gpulane.dev/lane-size-mib"
PERSISTENT_MIB = "gpulane.dev/persistent-mib"
EPHEMERAL_MIB = "gpulane.dev/ephemeral-mib"
MEMORY_LIMIT_MIB = "gpulane.dev/memory-limit-mib"
CHARGE_UNITS = "gpulane.dev/charge-units"
CLASS = "gpulane.dev/class"
ALLOCATED = "gpulane.dev/allocated"
JOB_LABEL = "gpulane.dev/job"

ALL = (NODE, GPU_INDEX, GPU_UUID, LANE, LANE_SIZE_MIB, PERSISTENT_MIB, EPHEMERAL_MIB, MEMORY_LIMIT_MIB,
       CHARGE_UNITS, CLASS, ALLOCATED, JOB_LABEL)
