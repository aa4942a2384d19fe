"""autodevhub story service: turns feature descriptions into user stories."""
