"""The testing kit: build components from YAML, run flows offline, fault-injecting partners."""
