# AdamW with a one-cycle learning rate per iteration: from lr_max / 10 up to lr_max over the
# first 40 % of training (cosine), then down to lr_max / 1e5 (mmdet3d's cyclic-20e schedule in
# mmengine's OneCycleLR form); gradient norms clipped at 35.
lr = 1e-4
max_epochs = 20
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=lr, betas=(0.95, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr * 10, pct_start=0.4, div_factor=10, final_div_factor=1e4,
         anneal_strategy="cos", by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
