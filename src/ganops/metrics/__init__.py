"""Sample-quality metrics and the domain feature network they are measured in."""
