from flobs.cli import main

main()
