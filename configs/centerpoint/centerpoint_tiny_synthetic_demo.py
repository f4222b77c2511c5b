# The tiny synthetic CenterPoint on the budget `make demo` can afford (a few minutes on 2 CPU
# cores): same model and data as centerpoint_tiny_synthetic.py, fewer epochs, no checkpoints
# except the last.
_base_ = ["./centerpoint_tiny_synthetic.py"]
lr = 2e-3
max_epochs = 18
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e3,
         anneal_strategy="cos", by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs + 1)
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
