from services.deploy.app import guardian

guardian.main()
