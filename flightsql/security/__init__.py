"""Trust decisions on SQL: what a statement reaches and which tables it touches."""
