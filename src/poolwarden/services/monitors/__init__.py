"""monitord: DNS blocklist checks of egress IPs and tenant domains, and the MX rollup
of recipient domains."""
