"""Swarm testing: generated scenarios over many seeds, checked, shrunk, sharded, covered."""
