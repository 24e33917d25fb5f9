from services.dashboard.app import guardian

guardian.main()
