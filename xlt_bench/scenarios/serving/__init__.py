"""Online serving pieces for the server scenario: request arrivals, batching policies and the open-loop server loop."""
