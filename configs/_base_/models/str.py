# STR (State Transformer): vectorised context encoder, GPT-2 causal backbone, key-point tokens in
# backward order, an MLP trajectory head and 6 scored modes (perception/models/planning/).
# AV2's horizon is 6 s, so the far key point is 6 s instead of STR's 8 s (nuPlan): for an
# 8 s horizon set str_future_steps = 80 and str_keypoint_times = [8.0, 4.0, 2.0, 1.0, 0.5].
str_history_frames = 10       # past frames (every 2nd 10 Hz step: 2 s of history) + "now"
str_future_steps = 60         # 6 s at 10 Hz
str_keypoint_times = [6.0, 4.0, 2.0, 1.0, 0.5]
model = dict(
    type="STR",
    backbone=dict(preset="small", max_tokens=256, dropout=0.0),   # presets: tiny .. xl (gpt2.PRESETS)
    context_encoder=dict(type="STRVectorEncoder", hidden_dim=64),  # or dict(type="STRRasterEncoder")
    future_steps=str_future_steps, dt=0.1, history_frames=str_history_frames,
    keypoint_times=str_keypoint_times, num_modes=6,
    keypoint_decoder="autoregressive",                             # or "diffusion"
    pos_scale=20.0,
)
