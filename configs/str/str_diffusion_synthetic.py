# STR with the diffusion key-point decoder: 6 key-point sets sampled by DDIM (equal scores).
_base_ = ["./str_small_synthetic.py"]
model = dict(keypoint_decoder="diffusion", diffusion=dict(hidden_dim=256, steps=50, sample_steps=10))
