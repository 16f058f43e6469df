"""CP-VTON networks (GMM, TOM), thin-plate-spline warping, losses, checkpoints and training."""
