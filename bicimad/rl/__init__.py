"""Policy-gradient cores (REINFORCE, A2C, PPO): generic, gymnasium and torch only."""
