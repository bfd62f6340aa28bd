"""Audio plumbing shared by the audio engines: decoding, subtitle rendering, live chunking."""
