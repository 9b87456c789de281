"""The cost-aggregation head: cost volume (§3.2), spatial and class aggregation (§3.3), the
upsampling decoder (§3.4) and the embedding guidance sources."""
