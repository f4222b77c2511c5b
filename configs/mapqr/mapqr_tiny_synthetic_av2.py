# The MapQR-style scatter-and-gather head on exactly the AV2-log tiny MapTR experiment
# (configs/maptr/maptr_tiny_synthetic_av2.py: same data, encoder, width, depth, queries, points,
# losses, auxiliary segmentation and schedule), so the two heads compare in the same budget.
_base_ = ["../maptr/maptr_tiny_synthetic_av2.py"]
model = dict(map_head=dict(type="MapQRHead", gather="concat"))
