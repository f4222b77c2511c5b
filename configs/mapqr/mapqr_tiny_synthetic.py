# The MapQR-style scatter-and-gather head on exactly the tiny MapTR setting
# (configs/maptr/maptr_tiny_synthetic.py: same data, encoder, width, depth, queries, points,
# losses and schedule), so the two heads compare in the same budget.
_base_ = ["../maptr/maptr_tiny_synthetic.py"]
model = dict(map_head=dict(type="MapQRHead", gather="concat"))
