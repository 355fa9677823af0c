"""Planning: the config and its checks, the registry of engines and methods, software envs, the job plan."""
