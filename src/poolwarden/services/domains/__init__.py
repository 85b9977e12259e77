"""Sending domains: DMARC aggregate report ingest and the authentication checks (SPF, DKIM,
DMARC, alignment, tracking hosts) of every tenant domain on every route it can take."""
