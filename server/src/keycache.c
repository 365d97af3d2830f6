/* placeholder: being written */
typedef int reqsign_placeholder_keycache;
