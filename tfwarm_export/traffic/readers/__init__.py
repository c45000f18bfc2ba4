"""One reader per data source; each yields ``rows.Chunk``s of one signature's inputs."""
