"""PostgreSQL with pgvector (issue 15, in progress): so far its sandbox server
(``server.PostgresServer``); the adapter and its engine come next."""
