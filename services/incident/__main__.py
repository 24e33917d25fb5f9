from services.incident.app import guardian

guardian.main()
