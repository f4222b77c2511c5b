# AdamW with a linear warm-up over the first 1000 iterations, then cosine annealing of the
# learning rate per iteration down to 1e-4 of its peak over `max_epochs` (mmdet3d's
# CenterPoint recipe uses lr 1e-4 .. 2e-4 for batch 32); gradient norms clipped at 35.
lr = 1e-4
max_epochs = 20
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type="CosineAnnealingLR", T_max=max_epochs, eta_min=lr * 1e-4, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
