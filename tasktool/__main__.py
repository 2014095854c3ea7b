from tasktool.cli.app import main

main()
