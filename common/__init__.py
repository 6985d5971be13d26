"""What appliance and central both need: configuration, logging, database plumbing, the wire contract."""
