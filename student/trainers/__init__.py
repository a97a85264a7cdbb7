"""How students learn: the small students' loop, the tiny transformer's schedule on HF `Trainer` (relation + soft/hard loss) and the Q/K/V capture it needs."""
