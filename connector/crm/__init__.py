"""Reading BPMSoft's own tables (read-only)."""
