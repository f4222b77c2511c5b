# STR "mini" (~0.26 M parameters) on the synthetic AV2 scenarios: the planning proof run
# (ego plan L2 vs the MLP planner, configs/str/README.md).  1500 iterations of 64 targets
# (~12 epochs of the 8,034 training samples) take ~20 min on one CPU core.
_base_ = ["./str_small_synthetic.py"]
model = dict(backbone=dict(preset="mini"))
