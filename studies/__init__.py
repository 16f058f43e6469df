"""Human studies: pairwise sheets in MTurk formats, the self-hosted study server (Prolific or lab), its exports,
and the analysis of answers."""
