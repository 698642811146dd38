from aksnap.cli import main

main()
