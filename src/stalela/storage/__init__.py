"""The document store: files the service keeps (exports, PDFs, reports), in a local directory or S3."""
