"""Building blocks shared by every concern: managed files, stamps and quoting."""
