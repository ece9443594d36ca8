"""The SQL store: schema, engines and migrations, and the ledger's reads and writes."""
