"""Human studies: A/B sheets in MTurk formats, the local study server, and the analysis of answers."""
