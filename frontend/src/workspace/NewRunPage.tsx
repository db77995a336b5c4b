export const NewRunPage = () => <div className="page" />
