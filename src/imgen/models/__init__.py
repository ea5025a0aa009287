"""What imgen knows of models: the capability table as data (one record per model or family,
naming its dialect), the value rules, the pre-flight check, the remote catalog and cost."""
