from admin_assistant.cli import main

main()
