"""Data readers and the data contract every source converts into."""
