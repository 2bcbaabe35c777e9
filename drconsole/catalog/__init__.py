"""Snapshot catalogs (``drconsole-snapshot/1``) on a local folder or S3: stores, the
format, manifests, chains, verification, retention and restore plans."""
