"""Knowledge Graph Lab: the one common library every service and the gateway share."""
