"""The policy file section by section: each module reads one part and reports its problems."""
