"""The neutral model every engine adapter maps to and from: filters, schemas and records,
free of any one database's dialect."""
